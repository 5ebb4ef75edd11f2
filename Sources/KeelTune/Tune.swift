/// `keel-pool tune`: searches processes × threads (or × worker-connections) for an app on this machine.
public enum Tune {}
