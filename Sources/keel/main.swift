print("keel: under construction")
