COMMANDS = []  # filled by the command's owner
