"""content feature of the appliance."""
