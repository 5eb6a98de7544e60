"""edgeloop hil: see ARCHITECTURE.md; built on top of core in a later issue."""
