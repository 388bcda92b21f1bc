/// The axis 2D slices are cut along.
public enum SliceAxis: String, Codable, Sendable, CaseIterable {
    /// Perpendicular to z (the third NIfTI axis).
    case axial
    /// Perpendicular to y.
    case coronal
    /// Perpendicular to x.
    case sagittal
}
