"""`provisioner bench`: time to N runners, side by side across creation modes."""
