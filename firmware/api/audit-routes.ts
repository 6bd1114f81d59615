/** GET /api/v1/audit: the audit log (MQTT commands and API changes), newest first. */
import type { AuditEntry } from '../services/audit.ts';
import type { Route } from './route.ts';

/** The part of AuditLog the route reads. */
export interface AuditReader {
  list(q: { limit?: number; identity?: string; command?: string; via?: 'mqtt' | 'api' }): AuditEntry[];
}

export const MAX_AUDIT_LIMIT = 1000;

export function auditRoutes(audit: AuditReader): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/audit',
      auth: true,
      summary: 'The audit log, newest first: who changed what over MQTT or the API, and how it ended',
      querySchema: {
        limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_LIMIT, description: 'entries (default 100)' },
        identity: { type: 'string', maxLength: 128, description: 'only this identity (admin, token#1, …)' },
        command: { type: 'string', maxLength: 128, description: 'only this command' },
        via: { type: 'string', enum: ['mqtt', 'api'] },
      },
      responseDescription: '{entries: [{ts, via, identity, command, targets?, result, code?}], count}',
      handler: ({ queryValues: q }) => {
        const entries = audit.list({
          limit: (q.limit as number | undefined) ?? 100,
          ...(q.identity !== undefined ? { identity: q.identity as string } : {}),
          ...(q.command !== undefined ? { command: q.command as string } : {}),
          ...(q.via !== undefined ? { via: q.via as 'mqtt' | 'api' } : {}),
        });
        return { status: 200, body: { entries, count: entries.length } };
      },
    },
  ];
}
