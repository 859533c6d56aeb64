print("coordinatord")
