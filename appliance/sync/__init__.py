"""sync feature of the appliance."""
