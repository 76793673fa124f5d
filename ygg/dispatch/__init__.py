"""Dispatching: the asyncio dispatcher, its slot pools, leases and nudges."""
