"""Shared I/O helpers used by several roles (files, git, HTTP). No role logic lives here."""
