/**
 * The one error class of moe-eval. Every failure that is not a plain argument error (TypeError /
 * RangeError, thrown before any native work) is a MoeEvalError with a stable `code`.
 */
export type ErrorCode =
  | 'ERR_MODEL_LOAD'
  | 'ERR_NOT_LOADED'
  | 'ERR_CONTEXT'
  | 'ERR_DECODE'
  | 'ERR_TEXT_TOO_SHORT'
  | 'ERR_NO_TOKENIZER'
  | 'ERR_TOKENIZE'
  | 'ERR_NOT_MOE'
  | 'ERR_BUSY'
  | 'ERR_STATE'
  | 'ERR_DISPOSED'
  | 'ERR_GGUF'
  | 'ERR_KLD_BASE'
  | 'ERR_VOCAB_MISMATCH'
  | 'ERR_QUANTIZE'
  | 'ERR_RPC'
  | 'ERR_FILE'
  | 'ERR_TASK_FILE'
  | 'ERR_TASK_TOO_LONG'
  | 'ERR_FIXTURE'
  | 'ERR_INVALID_ARG'
  | 'ERR_KV_OVERRIDE'
  | 'ERR_NATIVE'
  | 'ERR_NOT_IMPLEMENTED'
  | 'ERR_IMATRIX'
  | 'ERR_PROFILE_MISMATCH'
  | 'ABORT_ERR';

export class MoeEvalError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MoeEvalError';
    this.code = code;
  }
}

/** Thrown by any method of a disposed Model or Context. */
export class DisposedError extends MoeEvalError {
  constructor(what: string) {
    super('ERR_DISPOSED', `${what} has been disposed`);
    this.name = 'DisposedError';
  }
}

/** Turns an error from the addon (an Error with a `code`) into a MoeEvalError. */
export function fromNative(err: unknown, signal?: AbortSignal): Error {
  if (err instanceof MoeEvalError) return err;
  if (err instanceof Error) {
    const code = (err as Error & { code?: string }).code;
    if (code === 'ABORT_ERR' && signal?.aborted) return toAbortReason(signal);
    if (code === 'ERR_DISPOSED') return new DisposedError('the object');
    // a kvOverrides entry the model cannot take: a usage error, checked natively against the file
    if (code === 'ERR_KV_OVERRIDE') return Object.assign(new RangeError(err.message), { code });
    if (typeof code === 'string') return new MoeEvalError(code as ErrorCode, err.message, { cause: err });
    return new MoeEvalError('ERR_NATIVE', err.message, { cause: err });
  }
  return new MoeEvalError('ERR_NATIVE', String(err));
}

export function toAbortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(reason === undefined ? 'This operation was aborted' : String(reason), 'AbortError');
}
