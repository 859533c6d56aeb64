import CHiredis
print("coordinatord")
