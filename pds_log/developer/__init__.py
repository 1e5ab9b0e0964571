"""Developer tooling: keys, plugin skeletons, builds with the pinned recipe, signed submission."""
