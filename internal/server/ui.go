package server

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"path"
)

//go:embed assets
var assets embed.FS

// indexTemplate is the admin UI page. It holds no agent data: the script loads everything from
// the API with the same authentication as any other client, so the page itself is public.
var indexTemplate = template.Must(template.ParseFS(assets, "assets/index.html"))

// uiAssets are the files served under /ui/, with their content types.
var uiAssets = map[string]string{
	"app.js":    "text/javascript; charset=utf-8",
	"style.css": "text/css; charset=utf-8",
}

func (s *Server) uiIndex(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := indexTemplate.Execute(&buf, struct{ Version string }{s.opts.Version}); err != nil {
		s.log.ErrorContext(r.Context(), "rendering the UI failed", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "rendering the UI failed", nil)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(buf.Bytes())
}

func (s *Server) uiAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	ctype, ok := uiAssets[name]
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not found", nil)
		return
	}
	b, err := assets.ReadFile(path.Join("assets", name))
	if err != nil {
		s.log.ErrorContext(r.Context(), "reading an embedded asset failed", "file", name, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "reading the asset failed", nil)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// openAPIDocument returns the embedded OpenAPI document with info.version set to version.
func openAPIDocument(version string) []byte {
	raw, err := assets.ReadFile("assets/openapi.json")
	if err != nil {
		panic("server: embedded openapi.json missing: " + err.Error())
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		panic("server: embedded openapi.json is invalid: " + err.Error())
	}
	if version != "" {
		if info, ok := doc["info"].(map[string]any); ok {
			info["version"] = version
		}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("server: re-encoding openapi.json: " + err.Error())
	}
	return append(out, '\n')
}
