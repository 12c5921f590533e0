"""English month names, spelled out once for parsing and display.

Not ``strftime("%B")`` or ``calendar.month_name``: both follow the locale.
"""

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

MONTH_PATTERN = "|".join(MONTHS)
