"""Where raw payloads come from: the hub, a Socket.IO client, the hook spool.

Kept empty on purpose: ``aggregate hook`` imports ``sources.spool`` on every
call, and anything imported here would be paid for by each hook.
"""
