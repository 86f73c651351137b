"""media feature of the appliance."""
