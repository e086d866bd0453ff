"""The two STAC APIs (internal, external) built by one factory."""
