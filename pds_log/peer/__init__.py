"""The peer: verify plugins against trusted PVs, over HTTP mirrors or from offline bundles."""
