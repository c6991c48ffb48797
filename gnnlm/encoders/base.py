"""PLACEHOLDER (skeleton): the plug-in protocol for GNN encoders. The encoders work fills this in."""
