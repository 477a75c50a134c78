// Package pubsubapi is the generated Go code of the Salesforce Pub/Sub API (gRPC), shared by the
// Salesforce simulator (server) and the Salesforce connector (client).
package pubsubapi

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative pubsub_api.proto
