// The generated protobuf wire types and grpc-js service definitions (make proto), as
// one entry: '@tickmesh/kit/proto'. Message names are unique across the packages.
export * from './gen/google/protobuf/field_mask.js';
export * from './gen/tickmesh/customer/v1/customer.js';
export * from './gen/tickmesh/gateway/v1/websocket.js';
export * from './gen/tickmesh/ingest/v1/ingest.js';
export * from './gen/tickmesh/market/v1/market.js';
export * from './gen/tickmesh/price/v1/price.js';
