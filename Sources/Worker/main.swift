import Shared
print("worker")
