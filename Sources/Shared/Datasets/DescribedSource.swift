/// A task source that can say more about each task (volumes, slices, files).
public protocol DescribedSource: TaskSource {
    func details(task: Int) -> String?
}
