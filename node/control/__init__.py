"""Control of a running node from the same machine: the control socket (server and
client) and the command handlers it serves."""
