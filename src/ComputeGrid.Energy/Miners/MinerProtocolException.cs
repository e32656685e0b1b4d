namespace ComputeGrid.Energy.Miners;

/// <summary>Why a call to a miner's API failed.</summary>
public enum MinerErrorKind
{
    /// <summary>The TCP connection could not be made (refused, unreachable) or was lost before a full reply.</summary>
    ConnectionFailed,

    /// <summary>The miner did not answer within the call's timeout.</summary>
    Timeout,

    /// <summary>The reply was empty, not JSON, or JSON without the cgminer reply shape or an expected field.</summary>
    InvalidReply,

    /// <summary>The reply exceeded the client's reply size limit.</summary>
    ReplyTooLarge,

    /// <summary>The miner answered with a STATUS of <c>E</c> (error) or <c>F</c> (fatal).</summary>
    ErrorStatus,
}

/// <summary>
/// A call to a miner's cgminer-style API failed: the miner could not be reached, did not answer in time, answered
/// something that is not a valid reply, or answered with an error status. <see cref="Kind"/> says which.
/// </summary>
public sealed class MinerProtocolException : Exception
{
    /// <summary>Creates an exception of kind <see cref="MinerErrorKind.InvalidReply"/>.</summary>
    public MinerProtocolException() : this(MinerErrorKind.InvalidReply, "The miner's reply was invalid.") { }

    /// <summary>Creates an exception of kind <see cref="MinerErrorKind.InvalidReply"/> with a message.</summary>
    public MinerProtocolException(string message) : this(MinerErrorKind.InvalidReply, message) { }

    /// <summary>Creates an exception of kind <see cref="MinerErrorKind.InvalidReply"/> with a message and a cause.</summary>
    public MinerProtocolException(string message, Exception innerException)
        : this(MinerErrorKind.InvalidReply, message, innerException: innerException) { }

    /// <summary>Creates an exception of the given kind.</summary>
    /// <param name="kind">Why the call failed.</param>
    /// <param name="message">What happened, for people.</param>
    /// <param name="command">The API command that failed, if known.</param>
    /// <param name="statusCode">The reply's STATUS <c>Code</c>, for <see cref="MinerErrorKind.ErrorStatus"/>.</param>
    /// <param name="statusMessage">The reply's STATUS <c>Msg</c>, for <see cref="MinerErrorKind.ErrorStatus"/>.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public MinerProtocolException(
        MinerErrorKind kind,
        string message,
        string? command = null,
        int? statusCode = null,
        string? statusMessage = null,
        Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        Command = command;
        StatusCode = statusCode;
        StatusMessage = statusMessage;
    }

    /// <summary>Why the call failed.</summary>
    public MinerErrorKind Kind { get; }

    /// <summary>The API command that failed, if known.</summary>
    public string? Command { get; }

    /// <summary>The STATUS <c>Code</c> of an error reply; null for other kinds.</summary>
    public int? StatusCode { get; }

    /// <summary>The STATUS <c>Msg</c> of an error reply; null for other kinds.</summary>
    public string? StatusMessage { get; }
}
