"""The L4 agent: XDP data plane and BGP announcements on an L4 node."""
