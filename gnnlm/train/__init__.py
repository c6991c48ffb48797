"""train stage of gnnlm (see the package docstring)."""
