"""Every setting of the tap: declared, parsed, checked (see ARCHITECTURE.md)."""
