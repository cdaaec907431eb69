"""The project name: one constant shared by the hook markers, the plugin manager and the entry-point group."""

NAME = "harness"
ENTRY_POINT_GROUP = NAME
