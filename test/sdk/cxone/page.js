// The test page: NICE's CXone Agent SDK as an agent application uses it. check.mjs bundles it
// with esbuild and runs it in headless Chromium against the CXone simulator. window.CFG (set
// by the harness) names the simulator, the client id and the agent.
import { CXoneAuth } from '@nice-devone/auth-sdk';
import { CXoneAcdClient } from '@nice-devone/acd-sdk';

const cfg = window.CFG;
const auth = CXoneAuth.instance;
auth.init({ cxoneHostname: cfg.sim, clientId: cfg.clientId, redirectUri: location.origin + location.pathname });

window.states = [];
window.sdkErrors = [];

function describe(err) {
  try {
    return JSON.stringify(err, Object.getOwnPropertyNames(err || {}));
  } catch {
    return String(err);
  }
}

window.sdk = {
  // Starts the authorization-code flow: the simulator sends the browser back with a code.
  async login() {
    const url = await auth.getAuthorizeUrl('page', 'S256');
    location.href = url + '&login_hint=' + encodeURIComponent(cfg.agent);
  },
  // Exchanges the code (PKCE), checks the id_token against the JWKS, discovers the API and
  // calls whoami.
  async finishLogin() {
    const code = new URLSearchParams(location.search).get('code');
    const token = await auth.getAccessTokenByCode({ clientId: cfg.clientId, code });
    const acd = CXoneAcdClient.instance;
    acd.initAcdEngagement();
    acd.agentStateService.agentStateSubject.subscribe((s) => {
      window.states.push(JSON.parse(JSON.stringify(s)));
    });
    return { token: !!token.accessToken, user: auth.cxoneUser ? auth.cxoneUser.userInfo : null };
  },
  async startSession(phone) {
    const r = await CXoneAcdClient.instance.session.startSession({ stationId: '', stationPhoneNumber: phone });
    return r.data.sessionId;
  },
  async joinSession() {
    const r = await CXoneAcdClient.instance.session.joinSession();
    return r.data.sessionId;
  },
  async setState(state, reason) {
    const r = await CXoneAcdClient.instance.agentStateService.setAgentState({ state, reason });
    return r.status;
  },
  async unavailableCodes() {
    const codes = await CXoneAcdClient.instance.getTeamUnavailableCodes();
    return codes.map((c) => c.reason || c.outStateName || c.name || JSON.stringify(c));
  },
  describe,
};
window.sdkReady = true;
