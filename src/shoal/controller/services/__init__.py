"""The controller's rules, separate from HTTP: trees and revisions, status, health, quotas,
VIP allocation, change notification."""
