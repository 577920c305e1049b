// Imported first by the cluster tests, before anything loads @grpc/grpc-js (which reads its
// environment once, at load): the dns:// resolver then asks the DNS server a target names,
// the cluster's, so a client follows a Service's pods as they are replaced.
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER = 'true';
