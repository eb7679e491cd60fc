"""The library the commands share: one concept per module (docs/architecture.md)."""
