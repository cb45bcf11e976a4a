import CrmEventsWidget from './crm-events-widget';

export default function Page() {
  return (
    <main>
      <h1>CRM events</h1>
      <CrmEventsWidget endpoint="/api/ops/crm-events" />
    </main>
  );
}
