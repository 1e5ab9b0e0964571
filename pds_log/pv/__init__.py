"""The Plugin Validator: configuration, epoch job, log repository, publication."""
