"""Engram KV, the runtime side: prefix snapshots (`snapshot.py`), their tier encodings (`codec.py`), the file
format (`file.py`), the model identity that keys them (`identity.py`) and the `PrefixCache` hook engines
consult in prefill (`prefix_cache.py`, `engine_hooks.py`). The store behind the hook is `memory/snapshots.py`."""
