"""The `counterfloor` command: the floor manager's CLI, the gateway and the demo."""
