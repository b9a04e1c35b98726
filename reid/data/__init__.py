"""Data: dataset parsers, synthetic generator, transforms, samplers and loaders."""
