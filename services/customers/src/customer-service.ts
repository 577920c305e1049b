// CustomerService: validates each request, calls the repositories and maps
// rows to messages. Handlers are plain async functions (testable without a
// network); `registerCustomerService` wraps them for grpc-js, turning
// database outages into UNAVAILABLE.
import { Counter, type Registry } from 'prom-client';
import { NotFoundError, ResourceExhaustedError, UnauthenticatedError, UnavailableError } from '@tickmesh/kit';
import type { GrpcServer, Logger } from '@tickmesh/kit';
import {
  CustomerServiceService,
  type ApiKey,
  type CreateApiKeyRequest,
  type CreateApiKeyResponse,
  type CreateCustomerRequest,
  type CreateCustomerResponse,
  type Customer,
  type CustomerServiceServer,
  type DeleteCustomerRequest,
  type DeleteCustomerResponse,
  type GetCustomerRequest,
  type GetCustomerResponse,
  type GetWatchlistRequest,
  type GetWatchlistResponse,
  type ListApiKeysRequest,
  type ListApiKeysResponse,
  type ListCustomersRequest,
  type ListCustomersResponse,
  type RevokeApiKeyRequest,
  type RevokeApiKeyResponse,
  type SetWatchlistRequest,
  type SetWatchlistResponse,
  type UpdateCustomerRequest,
  type UpdateCustomerResponse,
  type VerifyApiKeyRequest,
  type VerifyApiKeyResponse,
} from '@tickmesh/kit/proto';
import { generateSecret, secretMatches, secretPrefix } from './api-key-secret.js';
import type { ApiKeyRepository, ApiKeyRow } from './api-key-repository.js';
import type { CustomerPatch, CustomerRepository, CustomerRow } from './customer-repository.js';
import { guardDb } from './db-errors.js';
import type { IdGenerator } from './ids.js';
import { decodePageToken, encodePageToken } from './page-token.js';
import {
  API_KEY_NAME_MAX_CHARS,
  pageSize,
  requireEmail,
  requireId,
  requireName,
  requireText,
  requireWatchlist,
  updateMaskFields,
} from './validation.js';
import type { WatchlistRepository } from './watchlist-repository.js';

export const CUSTOMER_SERVICE_NAME = 'tickmesh.customer.v1.CustomerService';

/** How many fresh prefixes CreateApiKey tries when one is taken (51 random bits: practically never). */
const PREFIX_ATTEMPTS = 3;

export interface CustomerServiceDeps {
  customers: CustomerRepository;
  watchlists: WatchlistRepository;
  apiKeys: ApiKeyRepository;
  ids: IdGenerator;
  clock?: () => number;
  limits: { watchlistMaxSymbols: number; apiKeysMaxActive: number; lastUsedResolutionMs: number };
}

export function toCustomer(row: CustomerRow): Customer {
  return {
    id: row.id,
    firstName: row.first_name,
    lastName: row.last_name,
    email: row.email,
    createTimeMs: row.create_time_ms,
    updateTimeMs: row.update_time_ms,
  };
}

export function toApiKey(row: Omit<ApiKeyRow, 'secret_sha256'>): ApiKey {
  return {
    id: row.id,
    customerId: row.customer_id,
    name: row.name,
    prefix: row.prefix,
    createTimeMs: row.create_time_ms,
    lastUsedTimeMs: row.last_used_time_ms ?? 0,
    revokeTimeMs: row.revoke_time_ms ?? 0,
  };
}

const customerNotFound = () => new NotFoundError('customer not found');
const INVALID_KEY = 'invalid API key';

export function customerServiceHandlers(deps: CustomerServiceDeps) {
  const { customers, watchlists, apiKeys, ids, limits } = deps;
  const now = deps.clock ?? Date.now;

  return {
    async createCustomer(req: CreateCustomerRequest): Promise<CreateCustomerResponse> {
      const firstName = requireName('first_name', req.firstName);
      const lastName = requireName('last_name', req.lastName);
      const email = requireEmail('email', req.email);
      const t = now();
      const row = await customers.create({
        id: ids.next(),
        first_name: firstName,
        last_name: lastName,
        email: email.display,
        email_normalized: email.normalized,
        create_time_ms: t,
        update_time_ms: t,
      });
      return { customer: toCustomer(row) };
    },

    async getCustomer(req: GetCustomerRequest): Promise<GetCustomerResponse> {
      const row = await customers.get(requireId('id', req.id));
      if (!row) throw customerNotFound();
      return { customer: toCustomer(row) };
    },

    async listCustomers(req: ListCustomersRequest): Promise<ListCustomersResponse> {
      const size = pageSize(req.pageSize);
      const emailFilter = req.email === '' ? '' : requireEmail('email', req.email).normalized;
      const cursor = decodePageToken(req.pageToken, emailFilter);
      // One extra row tells whether another page follows, so the last page has no token.
      const rows = await customers.list({
        afterId: cursor?.afterId,
        emailNormalized: emailFilter === '' ? undefined : emailFilter,
        limit: size + 1,
      });
      const page = rows.slice(0, size);
      const more = rows.length > size;
      return {
        customers: page.map(toCustomer),
        nextPageToken: more ? encodePageToken({ afterId: page[page.length - 1]!.id, emailFilter }) : '',
      };
    },

    async updateCustomer(req: UpdateCustomerRequest): Promise<UpdateCustomerResponse> {
      const id = requireId('id', req.id);
      const fields = updateMaskFields(req.updateMask);
      const patch: CustomerPatch = {};
      if (fields.has('first_name')) patch.first_name = requireName('first_name', req.firstName);
      if (fields.has('last_name')) patch.last_name = requireName('last_name', req.lastName);
      if (fields.has('email')) {
        const email = requireEmail('email', req.email);
        patch.email = email.display;
        patch.email_normalized = email.normalized;
      }
      const row = await customers.update(id, patch, now());
      if (!row) throw customerNotFound();
      return { customer: toCustomer(row) };
    },

    async deleteCustomer(req: DeleteCustomerRequest): Promise<DeleteCustomerResponse> {
      if (!(await customers.delete(requireId('id', req.id)))) throw customerNotFound();
      return {};
    },

    async getWatchlist(req: GetWatchlistRequest): Promise<GetWatchlistResponse> {
      const symbols = await watchlists.get(requireId('customer_id', req.customerId));
      if (!symbols) throw customerNotFound();
      return { symbols };
    },

    async setWatchlist(req: SetWatchlistRequest): Promise<SetWatchlistResponse> {
      const customerId = requireId('customer_id', req.customerId);
      const symbols = requireWatchlist(req.symbols, limits.watchlistMaxSymbols);
      if (!(await watchlists.set(customerId, symbols))) throw customerNotFound();
      return { symbols };
    },

    async createApiKey(req: CreateApiKeyRequest): Promise<CreateApiKeyResponse> {
      const customerId = requireId('customer_id', req.customerId);
      const name = requireText('name', req.name, API_KEY_NAME_MAX_CHARS, { optional: true });
      for (let attempt = 0; attempt < PREFIX_ATTEMPTS; attempt++) {
        const fresh = generateSecret();
        const row: ApiKeyRow = {
          id: ids.next(),
          customer_id: customerId,
          name,
          prefix: fresh.prefix,
          secret_sha256: fresh.hash,
          create_time_ms: now(),
          last_used_time_ms: null,
          revoke_time_ms: null,
        };
        const result = await apiKeys.create(row, limits.apiKeysMaxActive);
        if (result.kind === 'no-customer') throw customerNotFound();
        if (result.kind === 'limit') {
          throw new ResourceExhaustedError(
            `at most ${limits.apiKeysMaxActive} active API keys per customer: revoke one first`,
          );
        }
        if (result.kind === 'created') return { apiKey: toApiKey(result.row), secret: fresh.secret };
      }
      throw new UnavailableError('could not allocate an API key prefix, retry');
    },

    async listApiKeys(req: ListApiKeysRequest): Promise<ListApiKeysResponse> {
      const rows = await apiKeys.list(requireId('customer_id', req.customerId));
      if (!rows) throw customerNotFound();
      return { apiKeys: rows.map(toApiKey) };
    },

    async revokeApiKey(req: RevokeApiKeyRequest): Promise<RevokeApiKeyResponse> {
      const customerId = requireId('customer_id', req.customerId);
      const keyId = requireId('key_id', req.keyId);
      if (!(await apiKeys.revoke(customerId, keyId, now()))) throw new NotFoundError('API key not found');
      return {};
    },

    async verifyApiKey(req: VerifyApiKeyRequest): Promise<VerifyApiKeyResponse> {
      // Malformed, unknown, wrong and revoked all get the same answer.
      const prefix = secretPrefix(req.secret);
      if (!prefix) throw new UnauthenticatedError(INVALID_KEY);
      const row = await apiKeys.findByPrefix(prefix);
      if (!secretMatches(req.secret, row?.secret_sha256) || !row || row.revoke_time_ms !== null) {
        throw new UnauthenticatedError(INVALID_KEY);
      }
      const t = now();
      if (row.last_used_time_ms === null || row.last_used_time_ms < t - limits.lastUsedResolutionMs) {
        // Bookkeeping: a failed write (lock wait, a blip) must not fail an authentication that succeeded.
        await apiKeys.touchLastUsed(row.id, t, t - limits.lastUsedResolutionMs).catch(() => undefined);
      }
      return { customerId: row.customer_id, keyId: row.id };
    },
  };
}

export type CustomerServiceHandlers = ReturnType<typeof customerServiceHandlers>;

/**
 * Registers the handlers on `server`. Database outages answer UNAVAILABLE,
 * are counted per method and logged at most once per `logEveryMs` (an outage
 * under load would otherwise write one line per call).
 */
export function registerCustomerService(
  server: GrpcServer,
  handlers: CustomerServiceHandlers,
  opts: { logger: Logger; registry: Registry; logEveryMs?: number },
): void {
  const unavailable = new Counter({
    name: 'tickmesh_customers_db_unavailable_total',
    help: 'Calls answered UNAVAILABLE because MySQL was unreachable, timed out or not migrated',
    labelNames: ['method'],
    registers: [opts.registry],
  });
  const logEveryMs = opts.logEveryMs ?? 5000;
  let lastLog = 0;
  let suppressed = 0;
  const onUnavailable = (method: string) => (err: unknown) => {
    unavailable.inc({ method });
    const t = Date.now();
    if (t - lastLog < logEveryMs) {
      suppressed += 1;
      return;
    }
    opts.logger.warn(
      { method, err: err instanceof Error ? err.message : String(err), suppressed },
      'database unavailable',
    );
    lastLog = t;
    suppressed = 0;
  };
  const h = server.handlers;
  const wrap = <Req, Res>(method: string, fn: (req: Req) => Promise<Res>) =>
    h.unary<Req, Res>((req) => guardDb(() => fn(req), onUnavailable(method)));
  const implementation: CustomerServiceServer = {
    createCustomer: wrap('CreateCustomer', handlers.createCustomer),
    getCustomer: wrap('GetCustomer', handlers.getCustomer),
    listCustomers: wrap('ListCustomers', handlers.listCustomers),
    updateCustomer: wrap('UpdateCustomer', handlers.updateCustomer),
    deleteCustomer: wrap('DeleteCustomer', handlers.deleteCustomer),
    getWatchlist: wrap('GetWatchlist', handlers.getWatchlist),
    setWatchlist: wrap('SetWatchlist', handlers.setWatchlist),
    createApiKey: wrap('CreateApiKey', handlers.createApiKey),
    listApiKeys: wrap('ListApiKeys', handlers.listApiKeys),
    revokeApiKey: wrap('RevokeApiKey', handlers.revokeApiKey),
    verifyApiKey: wrap('VerifyApiKey', handlers.verifyApiKey),
  };
  server.addService(CUSTOMER_SERVICE_NAME, CustomerServiceService, implementation);
}
