"""One wrapper per model: each owns its tensor contract and its pre- and post-processing."""
