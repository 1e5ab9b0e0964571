"""The Plugin Repository: creation, receive hooks, policy administration, notifications."""
