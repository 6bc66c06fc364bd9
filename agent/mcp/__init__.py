"""The MCP client: servers from `.mcp.json` and user config, their tools offered to the model (README, "MCP servers").

Importing this package loads nothing of the SDK; it is imported when a server starts.
"""
