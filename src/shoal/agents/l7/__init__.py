"""The L7 agent: HAProxy on an L7 node, driven from the controller's desired state."""
