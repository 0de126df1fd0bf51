"""The default Cedar policies, principals and masking profiles, shipped as package data
(read with importlib.resources; `privet init` copies them into a new home)."""
