"""The gRPC layer: converts protobuf to pipeline values and back, maps errors to statuses."""
