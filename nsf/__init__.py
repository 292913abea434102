"""Native service function packages: lifecycle scripts plus a template, packed as .tgz."""
