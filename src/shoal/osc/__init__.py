"""`openstack shoal ...`: python-openstackclient commands for what Octavia has no verb for
(revisions, nodes, events, the flow trace). Loaded by the OpenStack client through the
`openstack.cli.extension` entry point; needs python-openstackclient (osc-lib, cliff)."""
