"""auth feature of the appliance."""
