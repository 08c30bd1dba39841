/**
 * Failures of trace export, import and analysis. Like the engine's errors they carry a stable
 * code; callers branch on the code, never on the message.
 */
import { CodedError } from '../errors.ts';

export const AnalysisErrorCode = {
  /** A trace, payload or prompt file does not have the shape the format documents. */
  BAD_INPUT: 'TRACE_BAD_INPUT',
  /** A trace file cannot be read: not Parquet/JSONL/CSV, missing metadata, or damaged. */
  BAD_FILE: 'TRACE_BAD_FILE',
  /** `--by` names a column the trace does not have. */
  UNKNOWN_FIELD: 'TRACE_UNKNOWN_FIELD',
  /** A resumed trace was started with another model or other generation parameters. */
  RESUME_MISMATCH: 'TRACE_RESUME_MISMATCH',
} as const;

export type AnalysisErrorCode = (typeof AnalysisErrorCode)[keyof typeof AnalysisErrorCode];

export class AnalysisError extends CodedError<AnalysisErrorCode> {
  override readonly name = 'AnalysisError';
}

export function badInput(message: string, details?: Record<string, unknown>): AnalysisError {
  return new AnalysisError(AnalysisErrorCode.BAD_INPUT, message, details);
}
