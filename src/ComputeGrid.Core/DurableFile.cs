using System.Runtime.InteropServices;
using System.Text;

namespace ComputeGrid.Core;

/// <summary>
/// Small files that must be on disk, and private, before anything acts on them (a credential shown to a person, a
/// key a node proves itself with): created with their final mode (there is no moment at which another user can read
/// them), written, fsync-ed, and their folder fsync-ed so the new name survives a crash too.
/// </summary>
public static partial class DurableFile
{
    /// <summary>
    /// Creates <paramref name="path"/> (it must not exist) readable and writable by its owner only (0600), writes
    /// <paramref name="text"/> and makes both the file and its name durable.
    /// </summary>
    /// <exception cref="IOException">The file exists, or the disk refused.</exception>
    public static void CreatePrivate(string path, string text) => CreatePrivate(path, Encoding.UTF8.GetBytes(text));

    /// <inheritdoc cref="CreatePrivate(string, string)"/>
    public static void CreatePrivate(string path, ReadOnlySpan<byte> bytes)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var f = new FileStream(path, options))
        {
            f.Write(bytes);
            f.Flush(flushToDisk: true);
        }
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>
    /// Replaces <paramref name="path"/> atomically with a private (0600) file holding <paramref name="text"/>: written
    /// to a temporary name, fsync-ed, renamed over the old one, and the folder fsync-ed.
    /// </summary>
    public static void ReplacePrivate(string path, string text)
    {
        string temp = path + ".tmp";
        File.Delete(temp);
        CreatePrivate(temp, text);
        File.Move(temp, path, overwrite: true);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>Makes the names in a folder durable (fsync of the folder; a no-op where the platform has none).</summary>
    public static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        int fd = open(directory, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"Cannot open folder {directory} to sync it (errno {Marshal.GetLastPInvokeError()}).");
        try
        {
            if (fsync(fd) != 0) throw new IOException($"Cannot sync folder {directory} (errno {Marshal.GetLastPInvokeError()}).");
        }
        finally { close(fd); }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
