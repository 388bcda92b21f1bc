import Shared
print(try! Network<Float>(spec: UNetConfig.w1.spec, capacity: 5).layout.count)
