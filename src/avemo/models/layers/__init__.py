"""Building blocks shared by several models (recurrent layers, attention, sketches)."""
