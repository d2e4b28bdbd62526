"""DVC stage commands: parse params.yaml, call asdlib, write outputs. Run as `python -m stages.<name>`."""
