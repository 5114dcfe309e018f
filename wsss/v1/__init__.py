"""Generated protobuf and gRPC code of the WeakSeg API (do not edit; regenerate with `make proto`)."""
