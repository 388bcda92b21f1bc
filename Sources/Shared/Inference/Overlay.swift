import Datasets

/// A picture of a prediction: the image (shown at the prediction's size) with the predicted
/// outline in yellow and the true one in green, enlarged so a structure's edge can be seen.
public enum Overlay {
    public static func render(_ image: [Float], height: Int, width: Int, prediction: [Float], truth: [Float]?,
                              predictionHeight h: Int, predictionWidth w: Int) -> Canvas {
        let shown = Resample.bilinear(image, height: height, width: width, outHeight: h, outWidth: w)
        let zoom = max(1, 384 / max(h, w))
        var c = Canvas(width: w * zoom, height: h * zoom)
        c.drawImage(shown, width: w, height: h, at: 0, 0, zoom: zoom)
        if let truth { c.drawOutline(truth, width: w, height: h, at: 0, 0, zoom: zoom, color: (60, 230, 90)) }
        c.drawOutline(prediction, width: w, height: h, at: 0, 0, zoom: zoom, color: (250, 220, 40))
        return c
    }
}
